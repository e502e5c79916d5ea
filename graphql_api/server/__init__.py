"""The process: app factory and lifespan wiring, CLI, uvicorn serving, readiness.
Transport lives here alone: GraphQL over HTTP, the WebSocket protocol and the web pages."""
