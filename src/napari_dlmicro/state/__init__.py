"""The docks' settings and state, free of Qt and napari: what a dock shows, remembers and turns into a job.

Each dock observes one of these evented objects (psygnal, as napari itself
uses) and only wires widgets to it, so building a job from the settings is
tested without a viewer.
"""
