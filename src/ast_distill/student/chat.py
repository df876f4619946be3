"""Gemma 3's turn format, which every student of this project speaks (the scratch tokenizer, the packaged
base and the hub's Gemma 3 alike): the turn markers and the chat template. Import-free, so any module may use
it."""
from __future__ import annotations

START_OF_TURN, END_OF_TURN = "<start_of_turn>", "<end_of_turn>"

# Gemma 3's turn format: the model's role is "model", a system message is prepended to the first user turn,
# and add_generation_prompt opens the model's turn. Message contents are trimmed as Gemma's template does.
# The {% generation %} markers (no text of their own) tell TRL's assistant_only_loss which tokens are the
# model's: its content and the <end_of_turn> it stops on, in every turn of a multi-request conversation.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] | trim + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{ '<start_of_turn>model\n' }}"
    "{% generation %}{{ message['content'] | trim + '<end_of_turn>' }}{% endgeneration %}"
    "{{ '\n' }}"
    "{%- else -%}"
    "{{ '<start_of_turn>' + message['role'] + '\n' + (first_user_prefix if loop.first else '') "
    "+ message['content'] | trim + '<end_of_turn>\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)
