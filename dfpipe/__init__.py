"""dfpipe: audio deepfake detection at scale.

The stages, in the order a clip travels. Each stage is one module (or package) of plain
functions, one thin Prefect flow in :mod:`dfpipe.flows`, and the tables it writes:

=================  =====================================  ==========================  ===============================
stage              plain functions                        flow                        writes
=================  =====================================  ==========================  ===============================
ingest             :mod:`dfpipe.ingest`                   ``dfpipe.flows.ingest``     ``clips``, ``rejects``
conditions         :mod:`dfpipe.conditions`               ``dfpipe.flows.conditions`` ``audio``
features           :mod:`dfpipe.features`                 ``dfpipe.flows.features``   ``features``
train              :mod:`dfpipe.train`                    ``dfpipe.flows.train``      ``runs``, ``epochs``, ``predictions``
score              :mod:`dfpipe.score`                    ``dfpipe.flows.score``      ``predictions``
score an archive   :mod:`dfpipe.archive_scoring`          ``dfpipe.flows.score``      an output folder
diagnostics        :mod:`dfpipe.diagnostics`              ``dfpipe.flows.diagnose``   ``diagnostics_*``
metrics, report    :mod:`dfpipe.metrics`, :mod:`dfpipe.report`  (in the study flow)   metric tables (``sql/``), HTML
=================  =====================================  ==========================  ===============================

Imports point one way: ``dfpipe.cli`` -> ``dfpipe.flows`` -> stages -> shared libraries
(clip sets, front end, models, ...) -> foundation (:mod:`dfpipe.lake`, :mod:`dfpipe.schemas`,
:mod:`dfpipe.config`, :mod:`dfpipe.stage_kit`). docs/architecture.md walks one clip through them.
"""

from dfpipe.lake import Lake

__all__ = ["Lake"]
__version__ = "0.1.0"
