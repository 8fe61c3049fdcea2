"""The site's own tooling: the snippet guard that keeps every code block tested."""
