"""Slack: settings from the environment, its clients, Block Kit messages, and two notifiers.

slack_sdk is imported on first use only, inside the functions that need it.
"""
