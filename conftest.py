"""Project-wide test set-up: pytester drives the plugin in isolated temporary projects."""

pytest_plugins = ("pytester",)
