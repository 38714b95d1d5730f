"""Command-line scripts that turn downloaded datasets into the list files videonl reads."""
