"""Teachers that write CoT, PoT and EoT targets: offline rules and a remote LLM."""
