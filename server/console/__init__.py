"""The testers' console (issue 12): request traces, scenarios, tokens and fault controls at /_console."""
