"""The OpenAPI 3.1 document, assembled from what each feature declares; /openapi.json and /docs."""
