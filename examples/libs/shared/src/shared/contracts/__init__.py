"""The HTTP contracts of the data services: one set of pydantic models for server and client."""
