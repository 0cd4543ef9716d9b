"""The HTTP edge: the JSON API, pings, auth, error mapping and the OpenAPI document."""
