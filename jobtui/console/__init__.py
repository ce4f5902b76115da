"""The live console (Textual). Screens talk to jobtui only through a controller (controller.py)."""
