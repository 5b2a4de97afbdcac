#!/usr/bin/env node
// Placeholder replaced by the real CLI in the foundation work.
console.log('connwatch 0.1.0');
