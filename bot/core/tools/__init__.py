"""The tool registry: each tool is declared once and serves both Claude (tool use) and people (slash commands)."""
