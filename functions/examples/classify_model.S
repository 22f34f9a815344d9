/* The model classify registers: models/fashion-mnist/fashion_cnn.onnx in the image's read-only
 * data (UNIFN_CLASSIFY_MODEL names the file), where it stays unchanged while registered. */
  .section .rodata
  .balign 64
  .globl classify_model
classify_model:
  .incbin UNIFN_CLASSIFY_MODEL
classify_model_end:
  .balign 8
  .globl classify_model_size
classify_model_size:
  .quad classify_model_end - classify_model
  .section .note.GNU-stack,"",@progbits
