"""Domain services: approvals, billing, portal, outbox, mail and the Temporal gateway.

They start and update workflows by name (`"ApprovalWorkflow"`), never by importing them."""
