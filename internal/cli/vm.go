package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/cliexec"
)

// vmList is `vm list --json`, the shape of MCP vm_list.
type vmList struct {
	VMs []pyro.VM `json:"vms"`
}

// vmCommand is the low-level VM lifecycle (vm_* MCP tools). Most users want
// `pyro run` (one-shot) or `pyro workspace` (persistent) instead.
func (a *app) vmCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "vm", Short: "Low-level VM lifecycle: create, list, start, exec (then delete), status, stop, delete"}
	printVM := func(v any) {
		m := v.(*pyro.VM)
		fmt.Fprintf(a.stdout, "vm:          %s\nstate:       %s\nenvironment: %s (%d vCPU, %d MiB)\n", m.VMID, m.State, m.Environment, m.VCPUCount, m.MemMiB)
		if m.ExpiresAt != nil {
			fmt.Fprintf(a.stdout, "expires:     %s\n", m.ExpiresAt.Format("2006-01-02T15:04:05Z07:00"))
		}
		for _, s := range m.Secrets {
			fmt.Fprintf(a.stdout, "secret:      %s (brokered to %s; the guest sees %s)\n", s.Name, strings.Join(s.BrokerHosts, ","), s.Placeholder)
		}
	}
	var req pyro.CreateVMRequest
	var createJSON bool
	var sec brokerFlags
	create := &cobra.Command{
		Use: "create ENV", Short: "Define a VM (stopped; `vm start` boots it)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Environment = args[0]
			var err error
			if req.Secrets, err = sec.secrets(); err != nil {
				return err // usage error
			}
			return a.wsRun(cmd, createJSON, func(ctx context.Context, c *pyro.Client) (any, error) { return c.CreateVM(ctx, req) }, printVM)
		},
	}
	create.Flags().IntVar(&req.VCPUCount, "vcpu-count", pyro.DefaultVCPUCount, "virtual CPUs")
	create.Flags().IntVar(&req.MemMiB, "mem-mib", pyro.DefaultMemMiB, "guest memory in MiB")
	create.Flags().IntVar(&req.TTLSeconds, "ttl-seconds", pyro.DefaultVMTTLSeconds, "delete after this many seconds without activity")
	create.Flags().StringVar(&req.NetworkPolicy, "network-policy", "off", "guest network: off (no network device) or egress (outbound NAT, never to the host itself, its loopback services or link-local addresses)")
	addAllowFlags(create.Flags(), &req.EgressRules, "allow only (with egress)")
	sec.add(create.Flags())
	create.Flags().BoolVar(&createJSON, "json", false, "print one JSON object")

	simple := func(verb, short string, call func(*pyro.Client, context.Context, string) (*pyro.VM, error)) *cobra.Command {
		var jsonOut bool
		c := &cobra.Command{
			Use: verb + " VM_ID", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return a.wsRun(cmd, jsonOut, func(ctx context.Context, c *pyro.Client) (any, error) { return call(c, ctx, args[0]) }, printVM)
			},
		}
		c.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
		return c
	}

	var execReq pyro.VMExecRequest
	var execJSON bool
	exec := &cobra.Command{
		Use: "exec VM_ID [flags] -- CMD...", Short: "Run one command in a started VM, then delete the VM",
		Args: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 1 || len(args) < 2 {
				return fmt.Errorf("usage: pyro vm exec VM_ID [flags] -- CMD...")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			execReq.VMID, execReq.Command = args[0], cliexec.ShellCommand(args[1:])
			c, done, err := a.client(execJSON)
			if err != nil {
				return a.fail(ctx, err, execJSON)
			}
			defer done()
			res, err := c.ExecVM(ctx, execReq)
			if err != nil {
				return a.fail(ctx, err, execJSON)
			}
			return a.commandResult(execJSON, res, res.Stdout, res.Stderr, res.StdoutTruncated || res.StderrTruncated, res.TimedOut, res.ExitCode)
		},
	}
	exec.Flags().IntVar(&execReq.TimeoutSeconds, "timeout-seconds", pyro.DefaultTimeoutSeconds, "command timeout")
	exec.Flags().BoolVar(&execJSON, "json", false, "print one JSON object")

	var listJSON bool
	list := &cobra.Command{
		Use: "list", Short: "List low-level VMs, newest activity first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.wsRun(cmd, listJSON, func(ctx context.Context, c *pyro.Client) (any, error) {
				vms, err := c.ListVMs(ctx)
				return vmList{VMs: vms}, err
			}, func(v any) {
				vms := v.(vmList).VMs
				if len(vms) == 0 {
					fmt.Fprintln(a.stdout, "no VMs")
				}
				for _, m := range vms {
					fmt.Fprintf(a.stdout, "%s  %-8s %s\n", m.VMID, m.State, m.Environment)
				}
			})
		},
	}
	list.Flags().BoolVar(&listJSON, "json", false, "print one JSON object")

	var netJSON bool
	netInfo := &cobra.Command{
		Use: "network-info VM_ID", Short: "Show a VM's network policy, and its guest addresses while it runs", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.wsRun(cmd, netJSON, func(ctx context.Context, c *pyro.Client) (any, error) { return c.VMNetworkInfo(ctx, args[0]) },
				func(v any) {
					n := v.(*pyro.NetworkInfo)
					fmt.Fprintf(a.stdout, "network policy: %s\n", n.NetworkPolicy)
					if n.GuestAddress != "" {
						fmt.Fprintf(a.stdout, "guest address:  %s (MAC %s)\ngateway:        %s\ndns:            %s\n",
							n.GuestAddress, n.MAC, n.Gateway, strings.Join(n.DNS, ", "))
					}
				})
		},
	}
	netInfo.Flags().BoolVar(&netJSON, "json", false, "print one JSON object")

	cmd.AddCommand(create, list,
		simple("start", "Boot a created or stopped VM", (*pyro.Client).StartVM),
		exec,
		simple("status", "Show one VM", (*pyro.Client).VMStatus),
		simple("stop", "Power a VM off, keeping its disk", (*pyro.Client).StopVM),
		simple("delete", "Remove a VM and its host state", (*pyro.Client).DeleteVM),
		netInfo)
	return cmd
}
