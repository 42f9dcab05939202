"""Scheduling: when interviews can happen. Availability across many interviewers, the slot engine,
interview loops and the availability request contract.
"""
