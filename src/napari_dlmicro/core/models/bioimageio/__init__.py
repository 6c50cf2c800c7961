"""bioimage.io model packages: our models exported as packages of the model spec 0.5, and packages of others
run through our StarDist, semantic and restoration paths.

- :mod:`.export` writes a package (weights as ONNX, TorchScript and a torch state dict with its architecture
  source; test tensors, cover, documentation, StarDist's postprocessing, training history and provenance).
- :mod:`.package` opens a package (zip, folder, ``rdf.yaml``/``bioimageio.yaml``, zoo id or DOI) safely and
  checks it; :mod:`.load` turns it into a segmenter or a restorer; :mod:`.weights` runs its weights.
"""
