// Courier browser client (ES module).
//
// This file is a placeholder: it is replaced by the browser client written
// from docs/protocol.md. The bridge serves it at "<mount>client.js".
export {};
