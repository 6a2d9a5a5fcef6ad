"""Who is calling: bearer-token verification (JWTs, JWKS), the decorator views use, and the /api/ guard."""
