"""The live console (Textual). It talks to the engine only through its public API and events."""
