"""Shipping a student: a merged transformers folder, GGUF files made and quantized by llama.cpp's own tools, an
Ollama Modelfile that renders the training prompt, and a check that each GGUF answers like the trained model.

- ``llamacpp_tools``: the converter (from llama-cpp-python's source distribution) and the quantizer;
- ``modelfile``: the Ollama Modelfile and the export folder's README;
- ``bundle``: the export stage (merge, convert, quantize, write, record);
- ``verify``: decode rows with llama.cpp (``ast_distill.llamacpp``) and with transformers, and compare.

llama-cpp-python is the ``export`` extra (uv compiles it once from its source distribution), so nothing here
is imported by the rest of the pipeline.
"""
