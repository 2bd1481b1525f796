"""Serving: the REST API, Segment-compatible intake, explorer page and MCP tools."""
