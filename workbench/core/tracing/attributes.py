"""Span attribute names. GenAI names follow the OpenTelemetry semantic conventions so that
exported traces read the same in any OTLP backend (Langfuse, Phoenix, Tempo)."""

OPERATION = "gen_ai.operation.name"  # chat, text_completion, embeddings, retrieval, ...
PROVIDER = "gen_ai.provider.name"  # llama.cpp, openai, anthropic, ...
REQUEST_MODEL = "gen_ai.request.model"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
FINISH_REASONS = "gen_ai.response.finish_reasons"
TIME_TO_FIRST_TOKEN = "gen_ai.server.time_to_first_token"  # seconds
COST_USD = "gen_ai.usage.cost"  # USD, the name Langfuse reads
TEMPLATE_ID = "workbench.prompt.template_id"
TEMPLATE_VERSION = "workbench.prompt.template_version"

# Attributes copied into columns of their own so that filters and sums stay fast.
PROMOTED = (
    (OPERATION, "operation"),
    (PROVIDER, "provider"),
    (REQUEST_MODEL, "model"),
    (INPUT_TOKENS, "input_tokens"),
    (OUTPUT_TOKENS, "output_tokens"),
    (TIME_TO_FIRST_TOKEN, "ttft_s"),
    (COST_USD, "cost_usd"),
    (TEMPLATE_ID, "template_id"),
    (TEMPLATE_VERSION, "template_version"),
)
