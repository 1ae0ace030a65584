"""edgetrim's Streamlit front end: thin pages over `core`."""
