"""Synthetic state extract with known true effects (the ``synthesize`` stage's library).

``generate(SynthConfig)`` returns the contract tables and the ground truth;
``write_extract`` writes them to a folder in any of the contract's forms.
"""

from pipeline.synth.config import SynthConfig
from pipeline.synth.generator import SyntheticExtract, generate
from pipeline.synth.writer import write_extract

__all__ = ["SynthConfig", "SyntheticExtract", "generate", "write_extract"]
