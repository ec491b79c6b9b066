"""EoTD Studio's Gradio app: solve with three thoughts, correct, review, export, active learning.

``studio.ui.build_app`` builds the Blocks; ``studio.handlers.Studio`` holds the plain-Python
handlers that both the UI and the named API endpoints call.
"""
