"""The dashboard in a real browser: headless Debian Chromium driven by Playwright against a real
`labbot serve` process on a seeded PostgreSQL database (fixtures in conftest.py)."""
