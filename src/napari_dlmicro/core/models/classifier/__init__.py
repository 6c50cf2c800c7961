"""Object classification: a class for every segmented object, learnt from a few labelled ones.

Two classifiers share one interface (:class:`.base.ObjectClassifier`):

- *fast* (:mod:`.fast`): per-object features (:mod:`.features`) into a random
  forest, refitted in a fraction of a second as the user labels objects;
- *deep* (:mod:`.deep`): a ResNet-18 on a crop around each object with the
  object's mask as an extra channel, fine-tuned on the one training loop.

Around them: the training table of labelled objects and how it survives a
re-segmentation (:mod:`.table`), held-out accuracy (:mod:`.assessment`), what
to label next (:mod:`.uncertainty`), why a class was given (feature
contributions, Grad-CAM) and the model folder (:mod:`.folder`).
"""
