"""Integrations with the world around a run: git (fetch, hook), Jenkins, notifications, reports."""
