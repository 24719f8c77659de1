"""Reaching the public web for tools (fetch_url), with the address checks that keep the bot out of private networks."""
