"""Protocol layer: one module per RFC concern; typed request in, typed result or OAuthError out."""
