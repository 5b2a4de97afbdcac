/**
 * Helpers for the Kubernetes-mode agent tests: the cluster the agent expects, the agent's
 * own-node-only authorisation, real kubectl, and the relay that lets an agent in another network
 * namespace reach the test API server on the host's loopback. They live in
 * scripts/lab/kube-glue.ts (the demo uses them too); this module re-exports them for the tests.
 */
export {
  CONFIGMAP,
  KUBECTL,
  NAMESPACE,
  RELAY_JS,
  addNode,
  agentKubeconfig,
  agentRules,
  connwatchNodeCrd,
  kubectl,
  nodeObject,
  setReady,
  setupCluster,
  unixToLoopback,
} from '../../scripts/lab/kube-glue.js';
