// `smithers-rs/serve`: the server of `smithers serve`, for a Node service that wants to host
// the API and the inbox itself.
export { startServer } from "./server.js";
export { loadServeConfig, generatedToken } from "./config.js";
export { signWebhook, verifyWebhook, newWebhookSecret, GATE_EVENTS } from "./webhooks.js";
