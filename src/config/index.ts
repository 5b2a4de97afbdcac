/** The config box: one schema, loaded from file < env < flags, validated, mode decided. */
export type { ConfigError, ConfigErrorCode } from './errors.js';
export { formatConfigErrors } from './errors.js';
export type { LoadConfigInput, LoadConfigResult } from './load.js';
export { loadConfig } from './load.js';
export type { ModeDecision, ModeInput } from './mode.js';
export { detectMode, SERVICE_ACCOUNT_TOKEN_PATH } from './mode.js';
export type { ConfigFlags } from './overrides.js';
export { COMMON_FLAGS, CONFIG_PARSE_ARGS_OPTIONS, CONFIG_PATH_ENV, envName } from './overrides.js';
export type { ActionSettings, Config, ParsedConfig } from './schema.js';
export { configSchema, DEFAULT_LISTEN, DEFAULT_STATE_DIR, resolveActionDefaults, resolveConfig } from './schema.js';
export { Secret, secretSchema } from '../common/secret.js';
