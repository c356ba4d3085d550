"""Helpers every torch kernel may use; copied verbatim into generated modules."""

import torch
