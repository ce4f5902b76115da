"""The controller interface between the console and a scheduler, wherever that scheduler runs.

The console's screens talk only to a `Controller`. `LocalController` drives a scheduler hosted
in this process; a client of a running daemon implements the same interface over a socket.
Nothing here imports Textual or rich: the views must be able to cross a socket.
"""
