"""Prefect flows: one thin flow per stage, wiring the plain functions of :mod:`dfpipe`."""
