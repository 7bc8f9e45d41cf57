"""Build script: metadata lives in setup.cfg; this file exists for the
compiled extension (mmdet_lossplug/csrc), which setup.cfg cannot declare."""
from setuptools import setup

setup()
