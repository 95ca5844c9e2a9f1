from twisted.application.service import ServiceMaker

bgpd = ServiceMaker("bgpd", "bgpd.tap", "BGP-4 routing daemon", "bgpd")
