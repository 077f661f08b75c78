"""The report stage's library: inputs, disclosure, counts, caveats, context, rendering."""
