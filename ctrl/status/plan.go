package status

import "github.com/lumbrjx/vpblu/core/desired"

// Plan is what the writers read of the desired state;
// *reconcile.Planner is one.
type Plan interface {
	NodeStatus(node string) (desired.NodeStatus, bool)
	Problems() []error
	PolicyGeneration(ref desired.Ref) (int64, bool)
	ActiveVia(routePolicy string) string
}
