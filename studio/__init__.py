"""EoTD Studio's Gradio app: solve with three thoughts, correct, review, export, active learning.

``studio.ui.build_app`` builds the Blocks (the Review & data tab in ``studio.review_tab``, the
named API endpoints in ``studio.api``); ``studio.handlers.Studio`` holds the plain-Python handlers
that both call; ``studio.user_errors`` decides what a failing handler tells the user.
"""
