"""Span attribute names. GenAI names follow the OpenTelemetry semantic conventions so that
exported traces read the same in any OTLP backend (Langfuse, Phoenix, Tempo)."""

OPERATION = "gen_ai.operation.name"  # chat, text_completion, embeddings, retrieval, ...
PROVIDER = "gen_ai.provider.name"  # llama.cpp, openai, anthropic, ...
REQUEST_MODEL = "gen_ai.request.model"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
CACHED_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"  # of the input, read from a KV cache
FINISH_REASONS = "gen_ai.response.finish_reasons"
TIME_TO_FIRST_TOKEN = "gen_ai.server.time_to_first_token"  # seconds
COST_USD = "gen_ai.usage.cost"  # USD, the name Langfuse reads
TEMPLATE_ID = "workbench.prompt.template_id"
TEMPLATE_VERSION = "workbench.prompt.template_version"
HARDWARE = "workbench.hardware"  # where a local model ran: cpu:N threads, gpu:all layers
KEY = "workbench.key"  # the name of the variable holding the key: a cloud call's, a gateway client's
QUEUE_WAIT_S = "workbench.queue_wait_s"  # time a local call waited for its turn on the model
WORKFLOW = "workbench.workflow"
NODE_TYPE = "workbench.node_type"
ROUTE = "workbench.route"  # local or cloud: what the router chose
ESCALATION_REASON = "workbench.escalation_reason"
ESCALATION_REFUSED = "workbench.escalation_refused"
ESCALATED_TO = "workbench.escalated_to"
REFUSED = "workbench.refused"  # a call refused before it was made (offline)

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
    # Since migration 5, for `workbench usage`: reading them out of the JSON took 70 ms per
    # figure at a million spans; as columns the whole report stays within 300 ms.
    (HARDWARE, "hardware"),
    (KEY, "key_name"),
    (QUEUE_WAIT_S, "queue_wait_s"),
    (WORKFLOW, "workflow"),
    (NODE_TYPE, "node_type"),
    (ROUTE, "route"),
    (ESCALATION_REASON, "escalation_reason"),
    (ESCALATION_REFUSED, "escalation_refused"),
    (ESCALATED_TO, "escalated_to"),
    (REFUSED, "refused"),
)
