"""jepsen-lite: property-based fault campaigns against real pyetcd processes
with a linearizability checker.  Imports only pyetcd.client and pyetcd.pb."""
