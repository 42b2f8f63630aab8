"""Conversations: one ConversationHandler module per job."""
