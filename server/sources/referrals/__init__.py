"""Booking and Referral Standard (BaRS) and the e-Referral Service (e-RS): ServiceRequest."""
