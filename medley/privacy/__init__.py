"""Privacy: users' own controls, erasure and history reset, differentially private analytics.

It sits above the recommendations (`medley.recs`): what serving honours and reads lives below
both, the users' controls in `medley.controls` and the erasure notices in `medley.erasures`, so
serving never imports privacy.
"""
