"""Who is calling: bearer-token verification (JWTs, JWKS, personal access tokens), the scopes a
route or tool needs, the decorator views use, and the /api/ guard."""
