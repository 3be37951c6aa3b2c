// RUN: dce
// A loop that gj.gradients taped (an iteration count and a list of the loop values it
// pushes each iteration), with only the forward result returned: the backward loop goes,
// and the forward loop drops its count and its tape, and the `taped` mark with them.
// (Printed from a graph `while sum(a) < 10: a = exp(a) * 0.5 + a` and its gradient.)
func.func @main(%x: tensor<2xf64>) -> tensor<2xf64> {
  %1 = "gj.constant"() {value = dense<0> : tensor<i64>} : () -> tensor<i64>
  %2 = "gj.list_new"(%x) : (tensor<2xf64>) -> !gj.list<tensor<2xf64>>
  %3:3 = "gj.while"(%x, %1, %2) ({
  ^bb0(%arg0: tensor<2xf64>, %arg1: tensor<i64>, %arg2: !gj.list<tensor<2xf64>>):
    %4 = "gj.reduce_sum"(%arg0) {axes = [0], keepdims = false} : (tensor<2xf64>) -> tensor<f64>
    %5 = "gj.constant"() {value = dense<10.0> : tensor<f64>} : () -> tensor<f64>
    %6 = "gj.less"(%4, %5) : (tensor<f64>, tensor<f64>) -> tensor<i1>
    "gj.condition"(%6) : (tensor<i1>) -> ()
  }, {
  ^bb0(%arg3: tensor<2xf64>, %arg4: tensor<i64>, %arg5: !gj.list<tensor<2xf64>>):
    %7 = "gj.exp"(%arg3) : (tensor<2xf64>) -> tensor<2xf64>
    %8 = "gj.constant"() {value = dense<0.5> : tensor<f64>} : () -> tensor<f64>
    %9 = "gj.mul"(%7, %8) : (tensor<2xf64>, tensor<f64>) -> tensor<2xf64>
    %10 = "gj.add"(%9, %arg3) : (tensor<2xf64>, tensor<2xf64>) -> tensor<2xf64>
    %11 = "gj.constant"() {value = dense<1> : tensor<i64>} : () -> tensor<i64>
    %12 = "gj.add"(%arg4, %11) : (tensor<i64>, tensor<i64>) -> tensor<i64>
    %13 = "gj.list_push"(%arg5, %arg3) : (!gj.list<tensor<2xf64>>, tensor<2xf64>) -> !gj.list<tensor<2xf64>>
    "gj.yield"(%10, %12, %13) : (tensor<2xf64>, tensor<i64>, !gj.list<tensor<2xf64>>) -> ()
  }) {taped = 1} : (tensor<2xf64>, tensor<i64>, !gj.list<tensor<2xf64>>) -> (tensor<2xf64>, tensor<i64>, !gj.list<tensor<2xf64>>)
  %14 = "gj.reduce_sum"(%3#0) {axes = [0], keepdims = false} : (tensor<2xf64>) -> tensor<f64>
  %15 = "gj.constant"() {value = dense<1.0> : tensor<f64>} : () -> tensor<f64>
  %16 = "gj.broadcast_like"(%15, %14) : (tensor<f64>, tensor<f64>) -> tensor<f64>
  %17 = "gj.expand_dims"(%16) {axes = [0]} : (tensor<f64>) -> tensor<1xf64>
  %18 = "gj.broadcast_like"(%17, %3#0) : (tensor<1xf64>, tensor<2xf64>) -> tensor<2xf64>
  %19:2 = "gj.while"(%3#1, %18) ({
  ^bb0(%arg6: tensor<i64>, %arg7: tensor<2xf64>):
    %20 = "gj.constant"() {value = dense<0> : tensor<i64>} : () -> tensor<i64>
    %21 = "gj.greater"(%arg6, %20) : (tensor<i64>, tensor<i64>) -> tensor<i1>
    "gj.condition"(%21) : (tensor<i1>) -> ()
  }, {
  ^bb0(%arg8: tensor<i64>, %arg9: tensor<2xf64>):
    %22 = "gj.constant"() {value = dense<1> : tensor<i64>} : () -> tensor<i64>
    %23 = "gj.sub"(%arg8, %22) : (tensor<i64>, tensor<i64>) -> tensor<i64>
    %24 = "gj.list_get"(%3#2, %23) : (!gj.list<tensor<2xf64>>, tensor<i64>) -> tensor<2xf64>
    %25 = "gj.exp"(%24) : (tensor<2xf64>) -> tensor<2xf64>
    %26 = "gj.constant"() {value = dense<0.5> : tensor<f64>} : () -> tensor<f64>
    %29 = "gj.mul"(%arg9, %26) : (tensor<2xf64>, tensor<f64>) -> tensor<2xf64>
    %32 = "gj.mul"(%29, %25) : (tensor<2xf64>, tensor<2xf64>) -> tensor<2xf64>
    %33 = "gj.add"(%arg9, %32) : (tensor<2xf64>, tensor<2xf64>) -> tensor<2xf64>
    "gj.yield"(%23, %33) : (tensor<i64>, tensor<2xf64>) -> ()
  }) : (tensor<i64>, tensor<2xf64>) -> (tensor<i64>, tensor<2xf64>)
  func.return %3#0 : tensor<2xf64>
}
// CHECK:      func.func @main(%arg0: tensor<2xf64>) -> tensor<2xf64> {
// CHECK-NEXT:   [[W:%[0-9]+]] = "gj.while"(%arg0) ({
// CHECK-NEXT:   ^bb0(%{{arg[0-9]+}}: tensor<2xf64>):
// CHECK:        }, {
// CHECK-NEXT:   ^bb0([[A:%arg[0-9]+]]: tensor<2xf64>):
// CHECK-NEXT:     [[E:%[0-9]+]] = "gj.exp"([[A]]
// CHECK-NEXT:     [[H:%[0-9]+]] = "gj.constant"() {value = dense<0.5> : tensor<f64>}
// CHECK-NEXT:     [[M:%[0-9]+]] = "gj.mul"([[E]], [[H]]
// CHECK-NEXT:     [[N:%[0-9]+]] = "gj.add"([[M]], [[A]]
// CHECK-NEXT:     "gj.yield"([[N]]) : (tensor<2xf64>) -> ()
// CHECK-NEXT:   }) : (tensor<2xf64>) -> tensor<2xf64>
// CHECK-NEXT:   func.return [[W]]
// CHECK-NOT:  list_
