"""dfpipe: audio deepfake detection at scale.

The stages, in the order a clip travels (each one module, one flow in ``flows/``, one
table in the lake):

=================  ==========================  ===============
stage              module                      writes table
=================  ==========================  ===============
ingest             :mod:`dfpipe.ingest`        ``clips``, ``rejects``
condition          :mod:`dfpipe.conditions`    ``audio``
features           :mod:`dfpipe.frontend`      ``features``
train              :mod:`dfpipe.train`         ``runs``, ``epochs``, ``predictions``
score              :mod:`dfpipe.score`         ``predictions``
metrics            :mod:`dfpipe.metrics`       metric tables (``sql/``)
=================  ==========================  ===============
"""

from dfpipe.lake import Lake

__all__ = ["Lake"]
__version__ = "0.1.0"
