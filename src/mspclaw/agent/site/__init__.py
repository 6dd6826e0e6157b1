"""The site agent: a client's directory, cloud and network services, configured where their credentials live.

A site agent is the same daemon as a device agent, enrolled with ``role: site``. ``site.json`` in its
state directory (:mod:`.config`) names the integrations it may use; :mod:`.registry` turns them into
exactly the tools they can perform; :mod:`.identity` decides per user which directory holds what.
"""
