"""Screens: home, chat, and the chat's modals (settings, history). Issue 9 adds train/export/runs."""
