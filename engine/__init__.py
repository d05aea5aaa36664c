"""Shuangti's generic workflow engine. Knows nothing of Ganzi and nothing of Flask."""
