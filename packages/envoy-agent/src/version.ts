/** Reported as the `agent_version` trait; kept in step with package.json by the release. */
export const AGENT_VERSION = '0.1.0';
